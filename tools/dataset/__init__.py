"""Dataset builder: prompts x flows -> run -> score -> triplets."""
