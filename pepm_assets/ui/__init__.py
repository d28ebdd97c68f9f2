"""Web pages pepm starts (`pepm explore`). Each is a script run by its server, never imported by `pepm`."""
