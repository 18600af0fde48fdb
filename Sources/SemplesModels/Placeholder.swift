// SemplesModels
