"""The HTTP face of ``wsmon serve``: the app, access control, logins, the targets API and the
dashboard's static files."""
