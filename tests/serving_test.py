"""The TF Serving client against loopback servers that answer with the real export."""
import concurrent.futures
import http.server
import json
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from pga_tf import serving
from conftest import Z_DIM


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Captures one request and answers as TF Serving's REST API does (columnar format)."""
    model = None
    captured = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        self.captured.append({'path': self.path, 'content_type': self.headers['Content-Type'],
                              'body': body})
        signature = self.model.signatures[body['signature_name']]
        spec = signature.structured_input_signature[1]
        outputs = signature(**{k: tf.constant(v, spec[k].dtype) for k, v in body['inputs'].items()})
        outputs = {k: v.numpy().tolist() for k, v in outputs.items()}
        reply = json.dumps({'outputs': outputs if len(outputs) > 1 else next(iter(outputs.values()))})
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def rest_server(exported):
    _Recorder.model, _Recorder.captured = tf.saved_model.load(exported[3]), []
    server = http.server.HTTPServer(('127.0.0.1', 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_port}', _Recorder
    server.shutdown()
    server.server_close()


def test_rest_request_is_tf_serving_predict_format(rest_server):
    url, recorder = rest_server
    z = np.random.RandomState(0).normal(size=(3, Z_DIM)).astype(np.float32)
    reply = serving.rest_predict(url, 'pga_mnist', serving.rest_request('serving_default', z=z))
    (request,) = recorder.captured
    # POST /v1/models/<name>:predict, JSON, {"signature_name": str, "inputs": {name: lists}}.
    assert request['path'] == '/v1/models/pga_mnist:predict'
    assert request['content_type'] == 'application/json'
    assert set(request['body']) == {'signature_name', 'inputs'}
    assert request['body']['signature_name'] == 'serving_default'
    np.testing.assert_allclose(np.array(request['body']['inputs']['z']), z, rtol=1e-6)
    images = serving.rest_outputs(reply)['images']
    expected = recorder.model.signatures['serving_default'](z=tf.constant(z))['images'].numpy()
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, expected)


def test_rest_scalar_inputs_and_versions(rest_server):
    url, recorder = rest_server
    reply = serving.rest_predict(url, 'pga_mnist', serving.rest_request('sample', num_samples=4, seed=3),
                                 version=1)
    (request,) = recorder.captured
    assert request['path'] == '/v1/models/pga_mnist/versions/1:predict'
    assert request['body']['inputs'] == {'num_samples': 4, 'seed': 3}
    out = serving.rest_outputs(reply, 'sample')
    assert out['images'].shape == (4, 28, 28, 1) and out['images'].dtype == np.uint8
    assert out['z'].shape == (4, Z_DIM) and out['z'].dtype == np.float32


class _Predictor(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, model):
        self.model, self.requests = model, []

    def Predict(self, request, context):
        self.requests.append(request)
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = self.model.signatures[request.model_spec.signature_name](**inputs)
        response = predict_pb2.PredictResponse()
        for k, v in outputs.items():
            response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
        return response


def test_grpc_round_trip(exported):
    model = tf.saved_model.load(exported[3])
    predictor = _Predictor(model)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(predictor, server)
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    try:
        z = np.random.RandomState(1).normal(size=(2, Z_DIM)).astype(np.float32)
        request = serving.grpc_request('pga_mnist', 'serving_default', version=1, z=z)
        images = serving.grpc_outputs(serving.grpc_predict(f'127.0.0.1:{port}', request))['images']
    finally:
        server.stop(None)
    (seen,) = predictor.requests
    assert (seen.model_spec.name, seen.model_spec.signature_name, seen.model_spec.version.value) == \
        ('pga_mnist', 'serving_default', 1)
    assert seen.inputs['z'].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in seen.inputs['z'].tensor_shape.dim] == [2, Z_DIM]
    expected = model.signatures['serving_default'](z=tf.constant(z))['images'].numpy()
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, expected)
