package nexmark

// NextPrice exposes nextPrice to the tests.
var NextPrice = nextPrice
