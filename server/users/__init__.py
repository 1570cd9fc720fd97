"""Accounts and the social graph: profiles, follows, blocks, mutes, roles."""
