import AuthdStore
import CCallerThread
import Foundation
import Histogram

/// Calls on a fixed schedule over one blocking connection, from one thread of its own that
/// sleeps in `ppoll` until the next call is due or an answer comes: the least CPU an open-loop
/// caller can spend per call, two wake-ups and three system calls.
///
/// The login storm's validations use it. On a small machine every microsecond a caller on the
/// same machine spends per call comes out of the hashing threads' share: the pipelined driver's
/// event loop, built for throughput, spent 65-96 µs of CPU per call at 1,000 calls a second
/// during a storm (its timer and its answer each a turn of the loop), 3.3-4.8 % of a 2-core
/// machine; this caller spends 40-67 µs.
///
/// Latency counts from each call's scheduled time, so a late answer delays the calls after it
/// and its wait shows in their latency (no coordinated omission); at most `pipeline` calls are
/// in flight, and calls due while that many are skip their turn, as in the pipelined driver.
struct OpenLoopCaller {
    let socketPath: String
    /// Calls per second.
    let rate: Double
    let pipeline: Int
    let duration: Duration
    let warmUp: Duration
    let maximumCalls: Int

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs on a thread of its own and returns when the duration or the budget is spent and
    /// the calls in flight are answered (or after 5 s more, counted as errors).
    func run(request: [UInt8]) async throws -> LoadRun.Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                // Named for per-thread figures (/proc's schedstat, perf -t); at most 15 bytes.
                _ = authd_name_thread("load-open-loop")
                continuation.resume(with: Result { try runHere(request: request) })
            }.start()
        }
    }

    private func runHere(request: [UInt8]) throws -> LoadRun.Result {
        let socket = try Self.connect(socketPath)
        defer { close(socket) }
        // A timer's default slack on Linux is 50 µs: each call would start up to that late, and
        // its latency, counted from the scheduled time, would include it.
        _ = authd_set_timer_slack(1)

        let interval = Int64(1e9 / max(rate, 0.001))
        let start = Int64(monotonicNanoseconds())
        let warmEnd = start + Int64(warmUp / .nanoseconds(1))
        let end = warmEnd + Int64(duration / .nanoseconds(1))
        let giveUp = end + 5_000_000_000
        let ring = Int.powerOfTwo(atLeast: pipeline * 4, minimum: 64)
        var startedAt = [Int64](repeating: 0, count: ring)
        var histogram = LoadRun.emptyHistogram()
        var calls: UInt64 = 0
        var errors: UInt64 = 0
        var firstError: String?
        var budget = maximumCalls
        var nextID: UInt64 = 1
        var inFlight = 0
        var scheduled = start
        var frame = [UInt8](repeating: 0, count: RawFrames.requestCapacity(bodyCount: request.count))
        var input = [UInt8](repeating: 0, count: 64 * 1024)
        var buffered = 0

        func fail(_ text: String) {
            errors += 1
            if firstError == nil { firstError = text }
        }

        while true {
            var now = Int64(monotonicNanoseconds())
            while scheduled <= now, scheduled < end, inFlight < pipeline, budget > 0 {
                let id = nextID
                nextID += 1
                budget -= 1
                startedAt[Int(id & UInt64(ring - 1))] = scheduled
                let length = frame.withUnsafeMutableBytes { out in
                    request.withUnsafeBytes { RawFrames.storeRequest(id: id, body: $0, into: out) }
                }
                try Self.writeAll(socket, frame, count: length)
                inFlight += 1
                scheduled += interval
            }
            // Calls that could not start because `pipeline` were in flight skip their turn.
            if scheduled <= now, scheduled < end { scheduled = now + interval }
            let sending = scheduled < end && budget > 0
            if !sending && inFlight == 0 { break }
            if now >= giveUp {
                errors += UInt64(inFlight)
                if firstError == nil { firstError = "\(inFlight) calls unanswered 5 s after the end" }
                break
            }
            let ready = authd_poll_readable_until(socket, sending && inFlight < pipeline ? scheduled : giveUp)
            if ready < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "ppoll: \(String(cString: strerror(errno)))")
            }
            guard ready > 0 else { continue }
            let got = input.withUnsafeMutableBytes { read(socket, $0.baseAddress! + buffered, $0.count - buffered) }
            if got < 0, errno == EINTR || errno == EAGAIN { continue }
            guard got > 0 else {
                // The calls in flight are lost with the connection, and the ones not yet made.
                if firstError == nil {
                    firstError = got == 0 ? "the daemon closed the connection" : "read: \(String(cString: strerror(errno)))"
                }
                errors += UInt64(max(inFlight, 1))
                break
            }
            buffered += got
            now = Int64(monotonicNanoseconds())
            // Every whole answer in the buffer; a partial one moves to its front.
            let consumed = input.withUnsafeBytes { raw in
                RawFrames.forEachFrame(in: UnsafeRawBufferPointer(rebasing: raw[..<buffered])) { answer in
                    inFlight -= 1
                    var reader = WireReader(bytes: answer)
                    guard let id = RawFrames.answerID(&reader) else {
                        fail("an answer without an id")
                        return
                    }
                    if let next = try? reader.nextTag(), next.0 == 2 {
                        fail(RawFrames.failure(answer))
                        return
                    }
                    let began = startedAt[Int(id & UInt64(ring - 1))]
                    if began >= warmEnd {
                        _ = histogram.record(UInt64(max(1, (now - began) / 1000)))
                        calls += 1
                    }
                }
            }
            if consumed > 0 {
                input.withUnsafeMutableBytes { raw in
                    if buffered > consumed { raw.baseAddress!.copyMemory(from: raw.baseAddress! + consumed, byteCount: buffered - consumed) }
                }
                buffered -= consumed
            }
            if buffered == input.count { input.append(contentsOf: [UInt8](repeating: 0, count: input.count)) }
        }
        return LoadRun.Result(
            calls: calls, errors: errors, seconds: Double(end - warmEnd) / 1e9, histogram: histogram, firstError: firstError)
    }

    private static func connect(_ path: String) throws -> Int32 {
        let socket = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            close(socket)
            throw Failure(description: "socket path longer than \(capacity - 1) bytes: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let message = String(cString: strerror(errno))
            close(socket)
            throw Failure(description: "connect \(path): \(message)")
        }
        return socket
    }

    private static func writeAll(_ socket: Int32, _ bytes: [UInt8], count: Int) throws {
        var at = 0
        while at < count {
            let wrote = bytes.withUnsafeBytes { write(socket, $0.baseAddress! + at, count - at) }
            if wrote < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "write: \(String(cString: strerror(errno)))")
            }
            at += wrote
        }
    }
}
