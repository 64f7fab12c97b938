"""A trained model put to use: `python -m imgclf.serve.predict` on photo files, and the MLflow pyfunc a shop serves."""
