import AuthdProto
import AuthdStore

/// The wire's frames as the load tool's raw drivers (`PipelinedCaller`, `OpenLoopCaller`) read
/// and write them, straight over bytes: each frame is its length (4 bytes big-endian) and then
/// the message. A request is the pre-encoded `authd.v1.Request` with its id (field 1) written in
/// front; an answer leads with its id, then field 2 on a failure only.
enum RawFrames {
    /// The most bytes the request frame of a body of `count` bytes takes: the length, the id's
    /// tag, at most ten bytes of varint, the body.
    static func requestCapacity(bodyCount count: Int) -> Int { 4 + 1 + 10 + count }

    /// Writes the request frame of `body` under `id` at the start of `out`, which holds at
    /// least `requestCapacity` bytes; returns the frame's length.
    static func storeRequest(id: UInt64, body: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        out[4] = 0x08  // field 1: id
        var at = WireWriter.storeVarint(id, into: out, at: 5)
        UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + body.count)]).copyMemory(from: body)
        at += body.count
        out.storeBytes(of: UInt32(at - 4).bigEndian, toByteOffset: 0, as: UInt32.self)
        return at
    }

    /// Calls `answer` with each whole frame's message, in order from the start of `raw`;
    /// returns the bytes they took. A frame not yet whole at the end is left.
    static func forEachFrame(in raw: UnsafeRawBufferPointer, _ answer: (UnsafeRawBufferPointer) -> Void) -> Int {
        var at = 0
        while raw.count - at >= 4 {
            let length = Int(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            guard raw.count - at - 4 >= length else { break }
            answer(UnsafeRawBufferPointer(rebasing: raw[(at + 4)..<(at + 4 + length)]))
            at += 4 + length
        }
        return at
    }

    /// Reads an answer's id, leaving `reader` at the answer's next field; nil when the answer
    /// does not start with one.
    static func answerID(_ reader: inout WireReader) -> UInt64? {
        guard let tag = try? reader.nextTag(), tag == (1, .varint) else { return nil }
        return try? reader.varint()
    }

    /// A failed answer's error, as its type and message.
    static func failure(_ answer: UnsafeRawBufferPointer) -> String {
        let response = try? Authd_V1_Response(serializedBytes: Array(answer))
        return response.map { "\($0.error.type): \($0.error.message)" } ?? "an undecodable error"
    }
}
