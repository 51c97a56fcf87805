"""API products and their rate plans: what is sold, at what price, from when."""
