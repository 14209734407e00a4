"""Training the codec model: its task (batch -> loss) and what only training needs."""
