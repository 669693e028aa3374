import AuthdProto
import Foundation

/// A plain blocking Unix-socket connection that sends whatever bytes a test chooses, for
/// feeding the daemon malformed input that AuthdClient would never produce.
final class RawConnection {
    private let fd: Int32

    init(socketPath: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DaemonTestError("socket() failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socketPath.utf8)) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw DaemonTestError("connect failed: \(errno)")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw DaemonTestError("send failed: \(errno)") }
            offset += n
        }
    }

    /// Half-closes the sending side, as a client that has nothing more to say.
    func shutdownWrite() {
        shutdown(fd, Int32(SHUT_WR))
    }

    func sendFrame(_ payload: [UInt8]) throws {
        try send(Self.lengthPrefix(payload.count) + payload)
    }

    func sendRequest(_ request: Authd_V1_Request) throws {
        try sendFrame(try request.serializedBytes())
    }

    /// The requests framed one after another, to be sent in one write: the daemon then reads
    /// them as one batch.
    static func frames(_ requests: [Authd_V1_Request]) throws -> [UInt8] {
        var bytes: [UInt8] = []
        for request in requests {
            let frame: [UInt8] = try request.serializedBytes()
            bytes += lengthPrefix(frame.count) + frame
        }
        return bytes
    }

    static func lengthPrefix(_ n: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt32(n).bigEndian) { Array($0) }
    }

    private func receiveExactly(_ count: Int) throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = buffer[offset...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return nil }
            guard n > 0 else { throw DaemonTestError("recv failed: errno \(errno)") }
            offset += n
        }
        return buffer
    }

    /// The next response frame, or nil when the daemon closed the connection.
    func receiveResponse() throws -> Authd_V1_Response? {
        guard let header = try receiveExactly(4) else { return nil }
        let length = header.reduce(0) { ($0 << 8) | Int($1) }
        guard let body = try receiveExactly(length) else { return nil }
        return try Authd_V1_Response(serializedBytes: body)
    }

    /// True when the daemon has closed the connection (EOF) with nothing more to read.
    func isClosedByPeer() throws -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        if n == 0 { return true }
        if n < 0 && (errno == ECONNRESET) { return true }
        return false
    }
}
