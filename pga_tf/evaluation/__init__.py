"""Evaluation: Fréchet distances with Inception (tensorflow-gan) or an offline classifier."""
