"""Training: the models (MLP, CNN, transfer, logistic regression), their batches, augmentation,
callbacks, devices and distribution, and the backup a killed training resumes from."""
