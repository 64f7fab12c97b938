"""The data a model learns from: download, decode and normalize (preprocess), split. No TensorFlow here."""
