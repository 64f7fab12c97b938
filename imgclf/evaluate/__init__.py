"""Scoring a trained model (its ONNX copy, or Keras) and the test metrics built from its probabilities."""
