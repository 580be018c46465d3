"""Sign2Sound machine learning: landmarks, features, model, training, evaluation. Never imports app/."""
