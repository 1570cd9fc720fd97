"""Authentication: passwords, access JWTs, refresh-token families, password reset."""
