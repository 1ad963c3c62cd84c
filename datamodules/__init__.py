"""LightningDataModules of cilight: the embedded synthetic street scenes and Cityscapes."""
