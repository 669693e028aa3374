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
        buffer.reserveCapacity(minimumWritableBytes: 4 + 11 + 6 + body.count)
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        if id != 0 {
            buffer.writeInteger(UInt8(0x08))  // field 1, varint
            writeVarint(id, to: &buffer)
        }
        if !body.isEmpty {
            buffer.writeInteger(UInt8(0x1A))  // field 3, length-delimited
            writeVarint(UInt64(body.count), to: &buffer)
            buffer.writeBytes(body)
        }
        buffer.setInteger(UInt32(buffer.writerIndex - lengthIndex - 4), at: lengthIndex)
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

    static func success(id: UInt64, body: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 4 + 11 + 6 + body.count)
        writeSuccess(id: id, body: body, into: &buffer)
        return buffer
    }

    static func failure(id: UInt64, error: AuthdError, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64 + error.message.utf8.count)
        writeFailure(id: id, error: error, into: &buffer)
        return buffer
    }

    private static func writeVarint(_ value: UInt64, to buffer: inout ByteBuffer) {
        var v = value
        while v >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        buffer.writeInteger(UInt8(v))
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
