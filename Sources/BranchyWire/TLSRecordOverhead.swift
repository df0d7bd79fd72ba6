/// TLS 1.3 application-data overhead: each record adds a 5-byte header, a 1-byte inner content
/// type and a 16-byte AEAD tag, and carries at most 16 KiB of plaintext.
public enum TLSRecordOverhead {
    public static let perRecord = 22
    public static let maxPlaintext = 16_384

    /// Ciphertext bytes for one flushed frame of `frameBytes` bytes.
    public static func wireBytes(forFrame frameBytes: Int) -> Int {
        frameBytes + perRecord * max(1, (frameBytes + maxPlaintext - 1) / maxPlaintext)
    }
}
