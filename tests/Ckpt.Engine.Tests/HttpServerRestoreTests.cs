using System.Net;
using System.Net.Sockets;

namespace Ckpt.Engine.Tests;

/// <summary>
/// A real server not written here (issue 12): `python3 -m http.server` bound to 127.0.0.1, one process
/// whose descriptors are stdio and its listening TCP socket. After `checkpoint --kill` and `restore`
/// it has its pid and serves a file on the same port.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class HttpServerRestoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-http-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Python_http_server_serves_on_its_port_after_checkpoint_kill_and_restore()
    {
        File.WriteAllText(Path.Combine(_directory, "hello.txt"), "hello from before the checkpoint\n");
        int port = FreePort();
        int pid = RestoreTestProcesses.Spawn(Path.Combine(_directory, "server.log"), "/usr/bin/python3",
            "-m", "http.server", port.ToString(), "--bind", "127.0.0.1", "--directory", _directory);
        try
        {
            Assert.Equal("hello from before the checkpoint\n", Get(port, waitForServer: true));
            string image = Path.Combine(_directory, "server.img");
            var (code, _, stderr) = RunCli(["checkpoint", "--pid", pid.ToString(), "--output", image, "--kill"]);
            Assert.True(code == 0, stderr);
            RestoreTestProcesses.WaitForExit(pid);
            RestoreTestProcesses.WaitUntilGone(pid);

            var restore = RunCli(["restore", "--input", image]);
            Assert.True(restore.ExitCode == 0, restore.Stderr);
            Assert.Equal(pid, int.Parse(restore.Stdout.Trim()));
            Assert.Equal("hello from before the checkpoint\n", Get(port, waitForServer: false));
            Assert.Equal("python3", File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n'));
        }
        finally
        {
            if (IsAlive(pid)) RestoreTestProcesses.Signal(pid, 9);
        }
    }

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    /// <summary>GET /hello.txt; the first time the server may still be starting (up to a minute on a loaded machine).</summary>
    private static string Get(int port, bool waitForServer)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return client.GetStringAsync($"http://127.0.0.1:{port}/hello.txt").GetAwaiter().GetResult();
            }
            catch (HttpRequestException) when (waitForServer && attempt < 600)
            {
                Thread.Sleep(100);
            }
        }
    }
}
