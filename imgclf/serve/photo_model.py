"""The served photo model as MLflow "models from code": log_photo_model logs this file with the model, and
loading the model runs it, so a server builds PhotoClassifier from code a reviewer can read (this file and
the imgclf package logged beside it) and unpickles no Python object. It holds no state: load_context reads
the network and its ServingInfo from the model's artifacts.
"""

import mlflow

from imgclf.serve.serving import PhotoClassifier

mlflow.models.set_model(PhotoClassifier())
