"""Several `hubbub serve` nodes as one: membership, placement, remote delivery (wired here
from actors/ and storage/redis/), and what the edges do when the view changes."""
