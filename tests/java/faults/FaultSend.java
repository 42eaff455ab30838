import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;

/**
 * A line-driven producer of the official Java client for tests/e2e_faults.py. Reads lines
 * "send TOPIC KEY BODY" from stdin and answers each with one line: "OK STATUS MSGID" when the
 * send was acknowledged, "ERR CODE REMARK" when it failed (the broker's response code and remark
 * of the last attempt, after the client's own retries on the other brokers; -1 and the
 * exception when no broker answered). Prints "READY" once started. Name server: -Dns.
 */
public class FaultSend {
    public static void main(String[] args) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer("PG_faults_java");
        p.setNamesrvAddr(System.getProperty("ns"));
        p.setSendMsgTimeout(10000);
        p.start();
        System.out.println("READY");
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            String[] w = line.split(" ", 4);
            if (w.length != 4 || !w[0].equals("send")) {
                System.out.println("ERR -1 bad command: " + line);
            } else {
                System.out.println(send(p, w[1], w[2], w[3]));
            }
            System.out.flush();
        }
        p.shutdown();
    }

    static String send(DefaultMQProducer p, String topic, String key, String body) {
        Message m = new Message(topic, "TagA", key, body.getBytes(StandardCharsets.UTF_8));
        try {
            SendResult r = p.send(m);
            return "OK " + r.getSendStatus() + " " + r.getMsgId();
        } catch (MQClientException e) {
            Throwable c = e.getCause();
            String remark = c instanceof MQBrokerException
                ? ((MQBrokerException) c).getErrorMessage() : e.getErrorMessage();
            return "ERR " + e.getResponseCode() + " " + oneLine(remark);
        } catch (MQBrokerException e) {
            return "ERR " + e.getResponseCode() + " " + oneLine(e.getErrorMessage());
        } catch (Exception e) {
            return "ERR -1 " + oneLine(e.toString());
        }
    }

    static String oneLine(String s) {
        return String.valueOf(s).replace('\n', ' ').replace('\r', ' ');
    }
}
