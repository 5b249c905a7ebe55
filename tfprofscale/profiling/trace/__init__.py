"""Loading a model file, fixing its inputs and tracing it with tf.function."""
