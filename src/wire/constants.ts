/** Sizes shared by the wire codecs (docs/PROTOCOL.md section 3). */

/** Outer header: TID (8) + N (8; type in the top byte, 56-bit counter below). */
export const HEADER_BYTES = 16;
export const TID_BYTES = 8;
export const AEAD_TAG_BYTES = 16;
/** Frame header inside the ciphertext: type (1) + length (2). */
export const FRAME_HEADER_BYTES = 3;
