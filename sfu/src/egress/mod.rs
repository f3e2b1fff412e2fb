/// One encoded picture of the program: H.264 NAL units without start codes.
pub struct ProgramVideo { pub nalus: Vec<bytes::Bytes>, pub keyframe: bool, pub pts_90k: u64 }
/// One Opus packet of the program (20 ms), 48 kHz clock.
pub struct ProgramAudio { pub opus: bytes::Bytes, pub ts_48k: u64 }
/// What the program is: video size, fps, H.264 SPS/PPS, audio channels.
pub struct ProgramFormat { pub width: u32, pub height: u32, pub fps: u32, pub sps: bytes::Bytes, pub pps: bytes::Bytes, pub audio_channels: u8 }
