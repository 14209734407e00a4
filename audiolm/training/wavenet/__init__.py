"""Training the wavenet model: its task (batch -> loss) and what only training needs."""
