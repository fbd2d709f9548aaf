"""Input and output: images, video, Parquet datasets."""
