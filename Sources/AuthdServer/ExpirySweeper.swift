import AuthdCore
import Logging
import ServiceLifecycle

/// Runs the expiry sweep every `interval` until the daemon shuts down. The first sweep runs a
/// minute after start (sooner at a shorter interval), so that a daemon restarted more often
/// than its interval still sweeps. A failed sweep is logged and tried again at the next one.
struct ExpirySweeper: Service {
    let sweep: ExpirySweep
    let interval: Duration
    let logger: Logger

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                var wait = min(interval, .seconds(60))
                while true {
                    try await Task.sleep(for: wait)
                    wait = interval
                    await sweepOnce()
                }
            }
        } catch is CancellationError {
            // Shutdown: a sweep in progress stopped between two of its writes.
        }
    }

    private func sweepOnce() async {
        let started = ContinuousClock.now
        do {
            let deleted = try await sweep.run()
            let took = ContinuousClock.now - started
            let metadata: Logger.Metadata = [
                "sessions": "\(deleted.sessions)", "tokens": "\(deleted.tokens)", "changes": "\(deleted.changes)",
                "duration": "\(took)",
            ]
            if deleted == ExpirySweep.Outcome() {
                logger.debug("expiry sweep found nothing to delete", metadata: metadata)
            } else {
                logger.notice("expiry sweep deleted expired sessions and tokens, and old change-log entries", metadata: metadata)
            }
        } catch is CancellationError {
            return
        } catch {
            logger.warning("expiry sweep failed", metadata: ["error": "\(error)"])
        }
    }
}
