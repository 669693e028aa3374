// The generated wire contract lives next to this file (scripts/gen-proto); clients importing
// AuthdProto also get SwiftProtobuf's Message API.
@_exported import SwiftProtobuf
