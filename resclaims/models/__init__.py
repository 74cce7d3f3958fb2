"""Models written for resclaims (there is no CPU build of torchvision to borrow them from)."""
