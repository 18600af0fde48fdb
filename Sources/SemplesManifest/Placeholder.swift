// SemplesManifest
