"""Dataset sources: parquet (lmms-lab layout, through `datasets`), official raw files, images."""
