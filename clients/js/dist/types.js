// The weft wire protocol (docs/protocol.md) and REST shapes (README.md), as types.
// Field names are the wire's own (snake_case) so that what you read here is
// what goes over the socket. This file holds types only: it compiles to nothing.
export {};
