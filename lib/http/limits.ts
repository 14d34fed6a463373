// The HTTP API's limits, stated in openapi.yaml (a test holds the two equal) and enforced by every server.

export interface ApiLimits {
  /** Largest request body; a larger one is refused with 413 before it is read in full. */
  readonly maxBodyBytes: number;
  /** Most tasks in one request (a batch, or the tasks of a session created in one go). */
  readonly maxTasksPerRequest: number;
  /** Requests per second a client may make on average (token bucket refill). */
  readonly requestsPerSecond: number;
  /** Requests a client may make at once above the average (token bucket size). */
  readonly burst: number;
  /** Result lines one results request returns at most (`limit`). */
  readonly maxResultsPerRequest: number;
  /** Longest a results stream stays open waiting for tasks to finish (`waitSec`), in seconds. */
  readonly maxWaitSec: number;
}

export const API_LIMITS: ApiLimits = {
  // Under Lambda's 6 MB request payload, so the AWS endpoint takes whatever the local one takes.
  maxBodyBytes: 5 * 1024 * 1024,
  maxTasksPerRequest: 10_000,
  requestsPerSecond: 50,
  burst: 100,
  maxResultsPerRequest: 1_000_000,
  // Inside Lambda's 15-minute limit, with room to end the stream cleanly.
  maxWaitSec: 840,
};
