"""The live page: frames in, letters, words and speech out; the user's own samples (calibration, practice) and personal models."""
