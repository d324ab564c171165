"""A client for an exported generator behind TF Serving: REST and gRPC predict requests.

REST (no extra dependency):

  body = serving.rest_request('sample', num_samples=16, seed=0)
  reply = serving.rest_predict('http://localhost:8501', 'pga_mnist', body)
  images = serving.rest_outputs(reply)['images']        # uint8 [16, 28, 28, 1]

gRPC (pip install "pga_tf[serving]", which brings tensorflow-serving-api):

  request = serving.grpc_request('pga_mnist', 'serving_default', z=np.zeros([4, 32], np.float32))
  images = serving.grpc_outputs(serving.grpc_predict('localhost:8500', request))['images']

Requests use TF Serving's columnar format ({"signature_name", "inputs"}), the one that also
carries the scalar inputs of `sample` and `interpolate`.
"""
import json
import urllib.request

import numpy as np

# Output dtypes of the export's signatures (JSON carries only numbers).
_UINT8_OUTPUTS = {'serving_default': {'images'}, 'sample': {'images'}, 'reconstruct': {'images'},
                  'interpolate': {'images'}}


def rest_request(signature, **inputs):
    """JSON body of a :predict call: {"signature_name": ..., "inputs": {name: nested lists}}."""
    return {'signature_name': signature,
            'inputs': {k: np.asarray(v).tolist() for k, v in inputs.items()}}


def rest_url(server, model, version=None):
    """`<server>/v1/models/<model>[/versions/<version>]:predict`."""
    path = f'/v1/models/{model}' + (f'/versions/{version}' if version else '')
    return server.rstrip('/') + path + ':predict'


def rest_predict(server, model, body, version=None, timeout=30.0):
    """POSTs `body` to TF Serving's REST API; returns the parsed JSON reply."""
    request = urllib.request.Request(rest_url(server, model, version),
                                     data=json.dumps(body).encode(), method='POST',
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def rest_outputs(reply, signature='serving_default'):
    """{name: array} from a columnar reply ("outputs" is the tensor itself for one output)."""
    outputs = reply['outputs']
    if not isinstance(outputs, dict):  # a single-output signature
        outputs = {'images': outputs}
    uint8 = _UINT8_OUTPUTS.get(signature, set())
    return {k: np.asarray(v, np.uint8 if k in uint8 else np.float32) for k, v in outputs.items()}


def grpc_request(model, signature, version=None, **inputs):
    """A tensorflow_serving PredictRequest for one signature."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def grpc_predict(address, request, timeout=30.0):
    """Sends a PredictRequest to TF Serving's gRPC port (e.g. 'localhost:8500')."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout)


def grpc_outputs(response):
    """{name: array} of a PredictResponse."""
    import tensorflow as tf

    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
