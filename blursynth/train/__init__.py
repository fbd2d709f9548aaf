"""The bundled DeblurGAN trainer: models, losses, metrics, data mixing, training, evaluation."""
