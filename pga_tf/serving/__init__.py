"""Serving: the generator as a versioned SavedModel, its model card, and a client.

The TF Serving client's functions are here by name: `from pga_tf import serving`, then
`serving.rest_request(...)` (see `client`).
"""
from pga_tf.serving.client import (grpc_outputs, grpc_predict, grpc_request, rest_outputs,
                                   rest_predict, rest_request, rest_url)
