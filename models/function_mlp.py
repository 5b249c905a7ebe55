"""A model that is not Keras: a ``tf.function`` with an ``input_signature``.

tfprofscale profiles it like any other model file; with no layers to map ops
to, its ops are grouped by their top-level name scope (``hidden``,
``logits``, ``probabilities``). The per-example input is a 784-pixel image
(a flattened 28x28 Fashion-MNIST picture); the batch dimension is None in the
signature and fixed by ``--batch-size``.

    python -m tfprofscale profile models/function_mlp.py --batch-size 32
"""
import tensorflow as tf

_rng = tf.random.Generator.from_seed(0)
_hidden_weights = tf.Variable(_rng.normal((784, 256), stddev=0.05), name="hidden_weights")
_hidden_bias = tf.Variable(tf.zeros((256,)), name="hidden_bias")
_logit_weights = tf.Variable(_rng.normal((256, 10), stddev=0.05), name="logit_weights")
_logit_bias = tf.Variable(tf.zeros((10,)), name="logit_bias")


@tf.function(input_signature=[tf.TensorSpec((None, 784), tf.float32, name="pixels")])
def model(pixels: tf.Tensor) -> tf.Tensor:
    """Class probabilities of a 784 -> 256 (ReLU) -> 10 perceptron."""
    with tf.name_scope("hidden"):
        hidden = tf.nn.relu(tf.nn.bias_add(tf.matmul(pixels, _hidden_weights), _hidden_bias))
    with tf.name_scope("logits"):
        logits = tf.nn.bias_add(tf.matmul(hidden, _logit_weights), _logit_bias)
    with tf.name_scope("probabilities"):
        return tf.nn.softmax(logits)
