// SemplesPipeline
