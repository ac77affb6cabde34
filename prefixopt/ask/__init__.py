"""Asking the model: prompts from people x questions, and rewards from its answers."""
