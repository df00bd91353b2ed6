namespace Ferry.Wasi;

/// <summary>WASI preview1 error numbers.</summary>
public enum Errno : ushort
{
    Success = 0, TooBig = 1, Access = 2, AddressInUse = 3, AddressNotAvailable = 4, AgainLater = 6, BadFd = 8,
    Busy = 10, ConnectionAborted = 13, ConnectionRefused = 14, ConnectionReset = 15, Exist = 20, Fault = 21,
    FileTooBig = 22, IllegalSequence = 25, Interrupted = 27, Invalid = 28, Io = 29, IsDirectory = 31, Loop = 32,
    TooManyFiles = 33, NameTooLong = 37, NoEntry = 44, NoMemory = 48, NoSpace = 51, NoSys = 52, NotConnected = 53,
    NotDirectory = 54, NotEmpty = 55, NotSocket = 57, NotSupported = 58, Overflow = 61, Permission = 63, Pipe = 64,
    ReadOnlyFileSystem = 69, SeekPipe = 70, CrossDevice = 75, NotCapable = 76,
}

/// <summary>Carries an errno out of nested helpers to the function's boundary, where it becomes the return value.</summary>
internal sealed class WasiError(Errno errno) : Exception(errno.ToString())
{
    public Errno Errno { get; } = errno;
}
