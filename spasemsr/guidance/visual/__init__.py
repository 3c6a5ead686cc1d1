"""Visual guidance: trainable LR encoders (E_img, E_sem), their frozen teachers and constraint losses."""
