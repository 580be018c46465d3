"""The live page: frames in, letters, words and speech out; calibration and personal models."""
