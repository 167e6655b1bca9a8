"""The domain shared by every door. Nothing here imports flask, pyrad or onelogin."""
