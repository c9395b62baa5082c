"""Small shared helpers: seeding, quaternions."""
