"""The maths of PGA: the networks, the losses (eqs. 1-11) and the training step."""
