import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.security.Permission;

/**
 * Runs many mqadmin command lines in one JVM (a JVM start costs seconds on two cores).
 *
 * Reads one command line per stdin line, its arguments separated by tabs; runs
 * MQAdminStartup.main0 on it with System.out and System.err captured; writes the captured text
 * to the real stdout followed by a line "@@END <exit>" (exit: "-" unless the command called
 * System.exit, which is refused so the JVM keeps serving). Compiles against rocketmq-tools
 * 4.9.8 and 5.x alike.
 */
public class AdminDriver {
    /**
     * MQAdminStartup registers its commands again on every main0 and runs the first one of a
     * name; some keep state (sendMessage keeps its producer, shut down after one use), so the
     * list starts empty for each command line.
     */
    @SuppressWarnings("unchecked")
    static void freshCommands() throws Exception {
        java.lang.reflect.Field f;
        try {
            f = org.apache.rocketmq.tools.command.MQAdminStartup.class.getDeclaredField("subCommandList"); // 4.x
        } catch (NoSuchFieldException e) {
            f = org.apache.rocketmq.tools.command.MQAdminStartup.class.getDeclaredField("SUB_COMMANDS"); // 5.x
        }
        f.setAccessible(true);
        ((java.util.List<Object>) f.get(null)).clear();
    }

    static final class ExitCalled extends SecurityException {
        final int status;

        ExitCalled(int status) {
            super("System.exit(" + status + ") refused by AdminDriver");
            this.status = status;
        }
    }

    @SuppressWarnings("removal")
    public static void main(String[] args) throws Exception {
        System.setSecurityManager(new SecurityManager() {
            @Override
            public void checkPermission(Permission perm) {
            }

            @Override
            public void checkPermission(Permission perm, Object context) {
            }

            @Override
            public void checkExit(int status) {
                throw new ExitCalled(status);
            }
        });
        PrintStream realOut = System.out;
        PrintStream realErr = System.err;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) {
                continue;
            }
            // "@@TIMEBOX\t<ms>\t<command line>": commands that loop until stopped (clusterRT) run
            // for <ms>, then their thread is interrupted.
            long timebox = 0;
            if (line.startsWith("@@TIMEBOX\t")) {
                String[] parts = line.split("\t", 3);
                timebox = Long.parseLong(parts[1]);
                line = parts[2];
            }
            String[] cmd = line.split("\t");
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            PrintStream capture = new PrintStream(buf, true, "UTF-8");
            System.setOut(capture);
            System.setErr(capture);
            String exit = "-";
            try {
                freshCommands();
                if (timebox > 0) {
                    Thread t = new Thread(() -> org.apache.rocketmq.tools.command.MQAdminStartup.main0(cmd, null));
                    t.start();
                    t.join(timebox);
                    t.interrupt();
                    t.join(10000);
                } else {
                    org.apache.rocketmq.tools.command.MQAdminStartup.main0(cmd, null);
                }
            } catch (ExitCalled e) {
                exit = Integer.toString(e.status);
            } catch (Throwable t) {
                t.printStackTrace(capture);
                exit = "throwable";
            } finally {
                capture.flush();
                System.setOut(realOut);
                System.setErr(realErr);
            }
            realOut.write(buf.toByteArray());
            realOut.println();
            realOut.println("@@END " + exit);
            realOut.flush();
        }
    }
}
