// SemplesFormats
