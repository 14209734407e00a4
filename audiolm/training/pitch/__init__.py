"""Training the codec's pitch net: Harvest labels and the task (batch -> loss)."""
