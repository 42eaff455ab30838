import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * Client-side message trace with no setup (tests/e2e_admin.py): a producer and a push consumer,
 * both built with enableMsgTrace=true and the default trace topic, send and consume COUNT
 * messages. Prints "SENT <msgId> <offsetMsgId>" per send and "CONSUMED <msgId>" per delivery,
 * then stays up (its trace dispatchers send in the background) until stdin closes or 30 s.
 *
 *     java -cp classes:lib/* TraceProbe <namesrv> <topic> <count>
 */
public class TraceProbe {
    public static void main(String[] args) throws Exception {
        String namesrv = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        CountDownLatch consumed = new CountDownLatch(count);
        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer("TraceProbeCG", true);
        consumer.setNamesrvAddr(namesrv);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.subscribe(topic, "*");
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                System.out.println("CONSUMED " + m.getMsgId());
                consumed.countDown();
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        consumer.start();
        DefaultMQProducer producer = new DefaultMQProducer("TraceProbePG", true);
        producer.setNamesrvAddr(namesrv);
        producer.start();
        for (int i = 0; i < count; i++) {
            Message m = new Message(topic, "TagT", "trace-k" + i, ("trace-body-" + i).getBytes("UTF-8"));
            SendResult r = producer.send(m);
            System.out.println("SENT " + r.getMsgId() + " " + r.getOffsetMsgId() + " " + r.getSendStatus());
        }
        boolean all = consumed.await(60, TimeUnit.SECONDS);
        System.out.println(all ? "ALL_CONSUMED" : "NOT_ALL_CONSUMED");
        System.out.flush();
        // The trace dispatchers send in the background: stay up until stdin closes (the test saw
        // the traces) or 30 s.
        Thread waiter = new Thread(() -> {
            try {
                while (System.in.read() >= 0) { }
            } catch (java.io.IOException e) { }
        });
        waiter.setDaemon(true);
        waiter.start();
        waiter.join(30_000);
        producer.shutdown();
        consumer.shutdown();
        System.out.println("DONE");
        System.exit(0);
    }
}
