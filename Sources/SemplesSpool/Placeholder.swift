// SemplesSpool
