extension HTMLReport {
    /// Everything the HTML report shows, in plain numbers and names. The renderer reads only
    /// this; `HTMLReport.Input(report:records:calibration:)` fills it from a run, so a change to
    /// `RunReport` touches that adapter and nothing else.
    public struct Input: Sendable, Equatable {
        /// A labelled value shown under the title (topology, device, codec...).
        public struct Detail: Sendable, Equatable {
            public var label: String
            public var value: String
            public init(_ label: String, _ value: String) {
                self.label = label
                self.value = value
            }
        }

        /// Mean bytes one link carried, per sample of some set of samples.
        public struct LinkShare: Sendable, Equatable {
            public var link: String
            /// TLS bytes on this link, both directions, divided by the samples of the set.
            public var bytesPerSample: Double
            public init(link: String, bytesPerSample: Double) {
                self.link = link
                self.bytesPerSample = bytesPerSample
            }
        }

        /// One exit of the model and the samples that left there.
        public struct Exit: Sendable, Equatable {
            public var name: String
            /// Node(s) that answered at this exit.
            public var node: String
            public var samples: Int
            /// Of `samples`, 0...1 (0 when there are none).
            public var accuracy: Double
            public var degraded: Int
            /// Per link, in link order, the bytes per sample that left at this exit.
            public var links: [LinkShare]
            /// Each sample's latency in milliseconds, ascending.
            public var latenciesMs: [Double]

            public init(name: String, node: String, samples: Int, accuracy: Double, degraded: Int, links: [LinkShare], latenciesMs: [Double]) {
                self.name = name
                self.node = node
                self.samples = samples
                self.accuracy = accuracy
                self.degraded = degraded
                self.links = links
                self.latenciesMs = latenciesMs.sorted()
            }

            public var bytesPerSample: Double { links.reduce(0) { $0 + $1.bytesPerSample } }
        }

        /// One link of the cluster (`device->edge`).
        public struct Link: Sendable, Equatable {
            public var name: String
            /// Samples whose request crossed the link.
            public var requests: Int
            /// Mean TLS bytes per request, up and down.
            public var meanUpBytes: Double
            public var meanDownBytes: Double
            public init(name: String, requests: Int, meanUpBytes: Double, meanDownBytes: Double) {
                self.name = name
                self.requests = requests
                self.meanUpBytes = meanUpBytes
                self.meanDownBytes = meanDownBytes
            }
        }

        public var title: String
        public var details: [Detail]
        public var samples: Int
        public var answered: Int
        public var degraded: Int
        public var failed: Int
        /// Over all samples, 0...1.
        public var accuracy: Double
        /// Mean TLS bytes on all links per sample.
        public var bytesPerSample: Double
        /// The same for sending each raw input to the cloud.
        public var rawOffloadBytesPerSample: Double
        public var durationSeconds: Double
        public var latencyP50Ms: Double
        public var latencyP99Ms: Double
        public var exits: [Exit]
        public var links: [Link]
        /// The model's threshold calibration, when there is one.
        public var calibration: Calibration?

        public init(title: String, details: [Detail] = [], samples: Int, answered: Int, degraded: Int, failed: Int, accuracy: Double,
                    bytesPerSample: Double, rawOffloadBytesPerSample: Double, durationSeconds: Double, latencyP50Ms: Double,
                    latencyP99Ms: Double, exits: [Exit], links: [Link], calibration: Calibration? = nil) {
            self.title = title
            self.details = details
            self.samples = samples
            self.answered = answered
            self.degraded = degraded
            self.failed = failed
            self.accuracy = accuracy
            self.bytesPerSample = bytesPerSample
            self.rawOffloadBytesPerSample = rawOffloadBytesPerSample
            self.durationSeconds = durationSeconds
            self.latencyP50Ms = latencyP50Ms
            self.latencyP99Ms = latencyP99Ms
            self.exits = exits
            self.links = links
            self.calibration = calibration
        }

        /// Link names in the order they first appear, over all links and exits.
        var linkNames: [String] {
            var seen: [String] = []
            for name in links.map(\.name) + exits.flatMap({ $0.links.map(\.link) }) where !seen.contains(name) { seen.append(name) }
            return seen
        }
    }
}
