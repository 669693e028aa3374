import AuthdCore
import AuthdProto
import AuthdStore
import Logging
import NIOCore

/// Writes `authd.v1.Response` frames straight into a buffer: the 4-byte length, the id and
/// the already-serialized body, with no intermediate message or copy of the body. Answers to
/// one read batch of calls go into one buffer, written with one write.
enum ResponseEncoding {
    static func writeSuccess(id: UInt64, body: [UInt8], into buffer: inout ByteBuffer) {
        // The body's bytes are borrowed before the buffer's closure: captured there as the
        // array, it was retained and released once per call, and a cached answer's array is
        // shared by every check of its session (perf, issue 5).
        body.withUnsafeBytes { body in writeSuccess(id: id, body: body, into: &buffer) }
    }

    static func writeSuccess(id: UInt64, body: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        // One pass over raw memory: ByteBuffer's checked writes, one per byte of the header,
        // cost as much as the rest of the answer.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 4 + 11 + 11 + body.count) { out in
            var at = 4
            if id != 0 {
                out[at] = 0x08  // field 1, varint
                at += 1
                at = WireWriter.storeVarint(id, into: out, at: at)
            }
            if !body.isEmpty {
                out[at] = 0x1A  // field 3, length-delimited
                at += 1
                at = WireWriter.storeVarint(UInt64(body.count), into: out, at: at)
                out.baseAddress!.advanced(by: at).copyMemory(from: body.baseAddress!, byteCount: body.count)
                at += body.count
            }
            out.storeBytes(of: UInt32(at - 4).bigEndian, toByteOffset: 0, as: UInt32.self)
            return at
        }
    }

    static func writeFailure(id: UInt64, error: AuthdError, into buffer: inout ByteBuffer) {
        var response = Authd_V1_Response()
        response.id = id
        response.error.code = UInt32(error.code)
        response.error.type = error.type
        response.error.message = error.message
        let bytes: [UInt8] = (try? response.serializedBytes()) ?? []
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
    }
}

/// Turns whatever a call threw into the error the client sees. Domain errors pass as they are;
/// anything else is a server fault: logged, and answered without internals.
func wireError(_ error: any Error, method: String, logger: Logger) -> AuthdError {
    switch error {
    case let error as AuthdError:
        return error
    case let error as StoreError where error.kind == .unavailable:
        logger.warning("store unavailable", metadata: ["method": "\(method)", "error": "\(error)"])
        return .unavailable("The store is not available: \(error.detail)")
    default:
        logger.error("call failed", metadata: ["method": "\(method)", "error": "\(error)"])
        return .serverError
    }
}
