"""Training: settings and presets, input pipelines, the Trainer, the loop and its run folder."""
